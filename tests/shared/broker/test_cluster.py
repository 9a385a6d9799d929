"""The broker on a real Redis Cluster (3 masters + 3 replicas): hash-tagged partitions,
SSUBSCRIBE per shard, and a master killed by PID mid-stream."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import orjson
import pytest
import redis

from shared.broker import BrokerUnavailable, ClusterBroker, LostScope
from shared.channels import (
    ALL_DRONES_PATTERN,
    drone_pattern,
    log_key,
    partition_fleet_channel,
    slot_of,
    tagged_snapshot_key,
)
from shared.events import EventName, PendingEvent, PublishedEvent, parse_event_id
from tests.fixtures.numbered import LOST, Verdict, verify_timeline
from tests.fixtures.redis_cluster import RedisCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
async def broker(cluster_url: str) -> AsyncIterator[ClusterBroker]:
    instance = ClusterBroker(cluster_url, retention_seconds=600, max_events=1000)
    await instance.start()
    yield instance
    await instance.close()


def serials_per_master(cluster: RedisCluster, each: int = 2) -> dict[int, list[str]]:
    """Serials whose partitions are on each master: {master port: [serial, ...]}."""
    found: dict[int, list[str]] = defaultdict(list)
    masters = {node.port for node in cluster.masters()}
    n = 0
    while any(len(found[port]) < each for port in masters):
        serial = f"DRONE-{n}"
        port = cluster.master_of(serial).port
        if len(found[port]) < each:
            found[port].append(serial)
        n += 1
    return dict(found)


def updated(serial: str, n: int, **kwargs: object) -> PendingEvent:
    return PendingEvent(EventName.DRONE_UPDATED, serial, {"n": n}, **kwargs)  # type: ignore[arg-type]


def numbers(events: list[PublishedEvent], serial: str) -> list[int]:
    return [orjson.loads(e.envelope)["data"]["n"] for e in events if e.serial == serial]


async def until(condition: object, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def publish_retrying(broker: ClusterBroker, event: PendingEvent) -> PublishedEvent:
    """As the outbox relay does: the same event (same uid) again until a replica has it."""
    while True:
        try:
            return await broker.publish(event)
        except BrokerUnavailable:
            await asyncio.sleep(0.05)


async def test_an_event_lives_in_its_drones_slot_on_that_slots_master(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    for port, serials in serials_per_master(redis_cluster, 1).items():
        [serial] = serials
        published = await broker.publish(updated(serial, 1, snapshot={"n": 1}))
        slot = slot_of(serial)
        with redis_cluster.node_at(port).client() as master:
            entries = master.xrange(log_key(slot))
            assert [raw_id.decode() for raw_id, _ in entries] == [published.id]
            assert master.get(tagged_snapshot_key(serial)) is not None
            assert master.cluster("keyslot", log_key(slot)) == slot
            assert master.cluster("keyslot", f"drone:{{{serial}}}:updated") == slot


async def test_a_detector_on_redis_gets_its_drones_events_with_ssubscribe(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    serial = "SN1"
    node = redis_cluster.master_of(serial)
    detector = redis.Redis(port=node.port).pubsub()
    detector.ssubscribe(f"drone:{{{serial}}}:updated")
    assert detector.get_message(timeout=2)["type"] == "ssubscribe"
    published = await broker.publish(updated(serial, 7))
    message = await asyncio.to_thread(detector.get_message, timeout=2)
    detector.close()
    assert message["type"] == "smessage"
    assert orjson.loads(message["data"]) == orjson.loads(published.envelope)
    assert orjson.loads(message["data"])["id"] == published.id


async def test_ids_order_each_drone_and_history_replays_one_drone_exactly(
    broker: ClusterBroker,
) -> None:
    first = await broker.publish(updated("SN1", 0))
    for n in range(1, 6):
        await broker.publish(updated("SN1", n))
        await broker.publish(updated("SN2", n))
    history = await broker.history(first.id, frozenset({"SN1"}))
    assert history.recovered
    assert numbers(history.events, "SN1") == [1, 2, 3, 4, 5]
    ids = [parse_event_id(e.id) for e in history.events]
    assert ids == sorted(ids)


async def test_one_id_cannot_resume_drones_of_several_slots_or_the_whole_fleet(
    broker: ClusterBroker,
) -> None:
    assert slot_of("SN1") != slot_of("SN2")
    first = await broker.publish(updated("SN1", 0))
    await broker.publish(updated("SN2", 1))
    assert not (await broker.history(first.id, frozenset({"SN1", "SN2"}))).recovered
    assert not (await broker.history(first.id, None)).recovered
    with pytest.raises(ValueError):
        await broker.history("nonsense", frozenset({"SN1"}))


async def test_a_drone_subscription_holds_one_shard_channel_on_that_drones_master(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    def shard_channels() -> dict[int, list[bytes]]:
        result = {}
        for node in redis_cluster.masters():
            with node.client() as client:
                result[node.port] = client.execute_command("PUBSUB", "SHARDCHANNELS")
        return result

    subscription = broker.subscription(lambda _: None)
    await subscription.add(drone_pattern("SN1"))
    expected = partition_fleet_channel(slot_of("SN1")).encode()
    owner = redis_cluster.master_of("SN1").port
    assert {port: sorted(chs) for port, chs in shard_channels().items()} == {
        port: ([expected] if port == owner else []) for port in shard_channels()
    }
    await subscription.remove(drone_pattern("SN1"))
    await until(lambda: not any(shard_channels().values()))


async def test_drones_removed_together_leave_their_masters_and_keep_the_rest(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    def shard_channels() -> list[bytes]:
        found = []
        for node in redis_cluster.masters():
            with node.client() as client:
                found += client.execute_command("PUBSUB", "SHARDCHANNELS")
        return sorted(found)

    per_master = serials_per_master(redis_cluster, 1)
    serials = [group[0] for group in per_master.values()]
    subscription = broker.subscription(lambda _: None)
    for serial in serials:
        await subscription.add(drone_pattern(serial))
    assert len(shard_channels()) == len(serials)
    await subscription.remove(*(drone_pattern(serial) for serial in serials[:-1]))
    kept = partition_fleet_channel(slot_of(serials[-1])).encode()
    await until(lambda: shard_channels() == [kept])


async def test_a_fleet_subscription_spreads_over_every_master_and_gets_every_shard(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    await subscription.add(ALL_DRONES_PATTERN)
    per_master = serials_per_master(redis_cluster, 2)
    for node in redis_cluster.masters():
        with node.client() as client:
            channels = client.execute_command("PUBSUB", "SHARDCHANNELS")
        assert 5000 < len(channels) < 6000  # ~16384 / 3: no shard carries the fleet alone
    serials = [s for group in per_master.values() for s in group]
    for n in range(10):
        for serial in serials:
            await broker.publish(updated(serial, n))
    await until(lambda: len(received) == 10 * len(serials))
    for serial in serials:
        assert numbers(received, serial) == list(range(10))


async def test_a_master_killed_mid_stream_loses_nothing_silently(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    per_master = serials_per_master(redis_cluster, 2)
    serials = [s for group in per_master.values() for s in group]
    timelines: dict[str, list[int | str]] = {serial: [] for serial in serials}
    resumed = asyncio.Event()

    def on_event(event: PublishedEvent) -> None:
        assert event.serial is not None
        timelines[event.serial].append(orjson.loads(event.envelope)["data"]["n"])

    def on_lost(scope: LostScope) -> None:
        for serial in serials:
            if scope.covers(serial):
                timelines[serial].append(LOST)

    async def on_resume() -> None:
        resumed.set()

    subscription = broker.subscription(on_event, on_resume=on_resume, on_lost=on_lost)
    for serial in serials:
        await subscription.add(drone_pattern(serial))
    victim_port, victims = next(iter(per_master.items()))
    victim = redis_cluster.node_at(victim_port)
    count = 300
    for n in range(count):
        for serial in serials:
            await publish_retrying(broker, updated(serial, n))
        if n == 100:
            redis_cluster.kill(victim)  # its replica takes over within ~3 s; we keep going
    await asyncio.wait_for(resumed.wait(), 30)
    await until(lambda: all(count - 1 in timelines[s] for s in serials), 30)
    for serial in serials:
        verdict = verify_timeline(timelines[serial], count)
        print(f"\n[{serial} {'killed' if serial in victims else 'healthy'} shard] {verdict}")
        if serial not in victims:
            assert verdict == Verdict(received=count)


async def test_a_dead_master_does_not_hold_up_the_other_shards(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    per_master = serials_per_master(redis_cluster, 1)
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    for [serial] in per_master.values():
        await subscription.add(drone_pattern(serial))
    (victim_port, [victim_serial]), *others = per_master.items()
    victim = redis_cluster.node_at(victim_port)
    redis_cluster.kill(victim)
    with pytest.raises(BrokerUnavailable):
        await broker.publish(updated(victim_serial, 0))
    for _, [serial] in others:
        await broker.publish(updated(serial, 1))
    await until(lambda: len(received) == len(others), 5)
    # ...and that was before its replica took over: nobody waited for the failover.
    try:
        owner: object = redis_cluster.master_of(victim_serial)
    except RuntimeError:
        owner = None  # marked failed, replica not yet promoted
    assert owner in (None, victim)
    redis_cluster.wait_failover(slot_of(victim_serial), victim)
    await publish_retrying(broker, updated(victim_serial, 2))
    await until(lambda: numbers(received, victim_serial) == [2], 15)


async def test_an_event_the_failover_took_with_it_is_announced_then_everything_after(
    cluster_url: str, redis_cluster: RedisCluster
) -> None:
    broker = ClusterBroker(cluster_url, replica_ack_ms=200)
    await broker.start()
    try:
        await _lose_one_event_in_a_failover(broker, redis_cluster)
    finally:
        await broker.close()


async def _lose_one_event_in_a_failover(broker: ClusterBroker, redis_cluster: RedisCluster) -> None:
    serial, bystander = "SN1", "SN2"
    timeline: list[int | str] = []
    scopes: list[LostScope] = []

    def on_lost(scope: LostScope) -> None:
        scopes.append(scope)
        timeline.append(LOST)

    subscription = broker.subscription(
        lambda e: timeline.append(orjson.loads(e.envelope)["data"]["n"]), on_lost=on_lost
    )
    await subscription.add(drone_pattern(serial))
    master = redis_cluster.master_of(serial)
    replica = redis_cluster.replica_of(master)
    for n in range(10):
        await publish_retrying(broker, updated(serial, n))
    # Cut the replication link while the replica cannot reconnect: what the master writes now
    # exists on the master alone (and in the live subscribers).
    redis_cluster.pause(replica)
    try:
        with master.client() as admin:
            assert admin.client_kill_filter(_type="replica") == 1
        unreplicated = updated(serial, 10)
        with pytest.raises(BrokerUnavailable, match="not on a replica"):
            await broker.publish(unreplicated)
        await until(lambda: 10 in timeline)  # live subscribers saw it
        redis_cluster.kill(master)
    finally:
        redis_cluster.resume(replica)
    redis_cluster.wait_failover(slot_of(serial), master)
    # The outbox still holds it (never acknowledged): it goes out again, on the new master.
    await publish_retrying(broker, unreplicated)
    for n in range(11, 20):
        await publish_retrying(broker, updated(serial, n))
    await until(lambda: timeline[-1:] == [19], 15)
    verdict = verify_timeline(timeline, 20)
    print(f"\n[unreplicated event, master killed] {verdict} timeline={timeline}")
    assert verdict == Verdict(received=21, duplicated=1, lost=0, notices=1)
    assert timeline[10:13] == [10, LOST, 10]
    [scope] = scopes
    assert scope.covers(serial) and not scope.covers(bystander)


async def test_a_pubsub_connection_killed_on_a_live_master_is_refilled_without_a_notice(
    broker: ClusterBroker, redis_cluster: RedisCluster
) -> None:
    serial = "SN1"
    timeline: list[int | str] = []
    resumed = asyncio.Event()

    async def on_resume() -> None:
        resumed.set()

    subscription = broker.subscription(
        lambda e: timeline.append(orjson.loads(e.envelope)["data"]["n"]),
        on_resume=on_resume,
        on_lost=lambda scope: timeline.append(LOST),
    )
    await subscription.add(drone_pattern(serial))
    for n in range(200):
        if n == 50:
            with redis_cluster.master_of(serial).client() as admin:
                assert admin.client_kill_filter(_type="pubsub") >= 1
        # The master is fine: its publishes do not fail over to the outbox.
        await broker.publish(updated(serial, n))
    await asyncio.wait_for(resumed.wait(), 10)
    await until(lambda: timeline[-1:] == [199])
    assert verify_timeline(timeline, 200) == Verdict(received=200)

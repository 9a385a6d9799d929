// Seed 001's "JavaScript/TypeScript Client" snippet, unchanged but for the server URL and a
// recorder that prints every event as one JSON line, so the test can check what arrived.
import io from 'socket.io-client';

const SERVER_URL = process.argv[2];
const record = (name, payload) => process.stdout.write(JSON.stringify({ name, payload }) + '\n');

// ---- seed 001, as written ----
// Connect
const socket = io(SERVER_URL, {
    path: '/ws/events'
});

// Listen for connection
socket.on('connected', (data) => {
    console.log('Connected:', data.clientId);

    // Subscribe to all drones
    socket.emit('subscribe', { all: true });

    // Or subscribe to specific drone
    socket.emit('subscribe', { droneSerial: 'DRONE123' });
});

// Listen for drone events
socket.on('drone:event', (event) => {
    console.log('Event received:', event);

    switch(event.event) {
        case 'drone.created':
            console.log('New drone:', event.data.full);
            break;
        case 'drone.updated':
            console.log('Drone updated:', event.data.changes);
            break;
        case 'drone.stream.status':
            console.log('Stream status:', event.data.streamIsOn);
            break;
    }
});
// ---- end of seed 001 ----

socket.on('connected', (data) => record('connected', data));
socket.on('drone:event', (event) => record('drone:event', event));
setTimeout(() => { socket.close(); process.exit(0); }, Number(process.argv[3] || 5000));

"""DroneCast's shared package: settings, models, events, channels, broker, auth, errors."""

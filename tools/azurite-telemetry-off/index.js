// Azurite loads its telemetry library at start even with --disableTelemetry, which every start here passes; it only
// calls into it when telemetry is on, and then catches the failure and carries on without it. See README.md.
module.exports = {};

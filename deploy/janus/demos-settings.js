// Janus demo pages (janus-demos) in the CallVault compose stack: talk to Janus over WebSockets on port
// 8188 of the host that served the page (compose.yaml publishes it). No STUN/TURN: host candidates only,
// with the address Janus announces through --nat-1-1 (JANUS_PUBLIC_IP).
var server = "ws://" + window.location.hostname + ":8188";
var iceServers = null;

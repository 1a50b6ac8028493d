"""The recorder fleet: recorder nodes registered in the shared catalog with a heartbeat, the fleet as the
API shows it, and the recordings of a recorder that went silent marked failed with what was recovered."""

"""What services share: generated gRPC stubs (rpc/) and versioned event models (events/)."""

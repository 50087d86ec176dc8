"""The chassis: what every Emporium service stands on (config, logs, metrics, tracing, rpc,
data, events and the adapters behind each port). Services share code only through here and
through `emporium.contracts`."""

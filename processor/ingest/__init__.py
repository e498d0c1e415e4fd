"""The OTLP receivers: gRPC, HTTP (protobuf and JSON), and the OTLP JSON decoder (and its thread).

They decode requests, hand whole requests to the pipeline and answer with the OTLP
status the exporters understand (back-pressure, shutdown, bad payloads). Nothing else in
the processor imports this package except :mod:`llmpulse.processor.service`. The gRPC
receiver runs on a thread of its own (:mod:`.loop_thread`).
"""

__all__ = ["json_decoder", "loop_thread", "otlp_grpc", "otlp_http", "otlp_json"]

# Loaded by tests/schemathesis/run (SCHEMATHESIS_HOOKS): WHIP and WHEP bodies are SDP, text
# schemathesis has no serializer of its own for; generated strings go as they are.
import schemathesis

schemathesis.serializer.alias(["application/sdp", "application/trickle-ice-sdpfrag"], "text/plain")

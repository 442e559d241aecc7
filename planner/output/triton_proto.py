"""The part of Triton's ModelConfig (model_config.proto) a planned deployment sets, as a protobuf message built
with protobuf's descriptor APIs: Triton's own .proto is not available offline, so its messages, field names and
enum values for what we write are declared here (names as in triton-inference-server/common's
protobuf/model_config.proto). A config.pbtxt is checked by parsing it back with protobuf's text_format into this
message: an unknown field, a wrong type or a malformed file fails there, as it would in tritonserver.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

DATA_TYPES = {"TYPE_INVALID": 0, "TYPE_BOOL": 1, "TYPE_UINT8": 2, "TYPE_UINT16": 3, "TYPE_UINT32": 4,
              "TYPE_UINT64": 5, "TYPE_INT8": 6, "TYPE_INT16": 7, "TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP16": 10,
              "TYPE_FP32": 11, "TYPE_FP64": 12, "TYPE_STRING": 13, "TYPE_BF16": 14}
KINDS = {"KIND_AUTO": 0, "KIND_GPU": 1, "KIND_CPU": 2, "KIND_MODEL": 3}

_F = descriptor_pb2.FieldDescriptorProto
# message -> (field name, number, type, label, type name)
_MESSAGES = {
    "ModelInput": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                   ("data_type", 2, _F.TYPE_ENUM, _F.LABEL_OPTIONAL, ".inference.DataType"),
                   ("dims", 4, _F.TYPE_INT64, _F.LABEL_REPEATED, None)],
    "ModelOutput": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                    ("data_type", 2, _F.TYPE_ENUM, _F.LABEL_OPTIONAL, ".inference.DataType"),
                    ("dims", 3, _F.TYPE_INT64, _F.LABEL_REPEATED, None)],
    "ModelInstanceGroup": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                           ("count", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
                           ("gpus", 3, _F.TYPE_INT32, _F.LABEL_REPEATED, None),
                           ("kind", 4, _F.TYPE_ENUM, _F.LABEL_OPTIONAL, ".inference.ModelInstanceGroup.Kind")],
    "ModelDynamicBatching": [("preferred_batch_size", 1, _F.TYPE_INT32, _F.LABEL_REPEATED, None),
                             ("max_queue_delay_microseconds", 2, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, None)],
    "ModelConfig": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                    ("platform", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                    ("max_batch_size", 4, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
                    ("input", 5, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".inference.ModelInput"),
                    ("output", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".inference.ModelOutput"),
                    ("instance_group", 7, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".inference.ModelInstanceGroup"),
                    ("dynamic_batching", 11, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".inference.ModelDynamicBatching"),
                    ("backend", 17, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
}


def _build() -> type[Message]:
    f = descriptor_pb2.FileDescriptorProto(name="planner_triton_model_config.proto", package="inference",
                                           syntax="proto3")
    dt = f.enum_type.add(name="DataType")
    for name, number in DATA_TYPES.items():
        dt.value.add(name=name, number=number)
    for msg_name, fields in _MESSAGES.items():
        m = f.message_type.add(name=msg_name)
        if msg_name == "ModelInstanceGroup":
            kind = m.enum_type.add(name="Kind")
            for name, number in KINDS.items():
                kind.value.add(name=name, number=number)
        for name, number, ftype, label, type_name in fields:
            fd = m.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = _build()


def parse_config(text: str) -> Message:
    """A config.pbtxt parsed into ModelConfig; text_format.ParseError on anything Triton would refuse to read."""
    return text_format.Parse(text, ModelConfig())


def to_text(config: Message) -> str:
    return text_format.MessageToString(config)

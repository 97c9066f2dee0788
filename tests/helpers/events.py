"""Reading TensorBoard event files back without TensorFlow."""
import glob
import os
import struct


def read_events(logdir):
  """Every Event record of the event files in `logdir` (TFRecord framing, CRCs skipped)."""
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      record = data[pos + 12:pos + 12 + length]
      pos += 12 + length + 4
      event = event_pb2.Event()
      event.ParseFromString(record)
      events.append(event)
  return events

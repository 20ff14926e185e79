"""Small real files of each accepted kind, made in the test (no fixtures on disk).

Images are real Pillow images; the video and audio samples are the opening boxes/elements of real
containers (what a sniffer reads), padded; a PDF is a minimal PDF.
"""

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

GPS_IFD = 0x8825
MAKE = 0x010F
ORIENTATION = 0x0112


def image_bytes(fmt: str = "JPEG", size=(64, 48), color=(200, 30, 30), exif: bool = False) -> bytes:
    image = Image.new("RGB", size, color)
    out = io.BytesIO()
    options = {}
    if exif:
        data = Image.Exif()
        data[MAKE] = "SpyCam 3000"
        data[ORIENTATION] = 1
        data.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
        options["exif"] = data.tobytes()
    image.save(out, format=fmt, **options)
    return out.getvalue()


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free" + b"\x00" * 2000
M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x00\x00\x00\x08free" + b"\x00" * 2000
WEBM = (
    bytes.fromhex("1A45DFA3")
    + b"\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04"
    + b"\x42\x85\x81\x02" + b"\x00" * 2000
)
OGG_OPUS = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 2000
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def uploaded(content: bytes, name: str = "file.bin", content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)

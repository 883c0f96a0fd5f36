"""A tiny marketplace export with every quirk the cleaner must handle, for the export and prepare tests."""

import io
import numpy as np
from PIL import Image



SIZE = 48


PRODUCTS_CSV = (
    ",id,product_name,category,product_description,price,location\n"
    '0,p1,Kettle,Appliances / Kettles,Nice\rkettle,"£1,234.50",Leeds\n'
    "1, p2 ,Sofa, Home & Garden / Sofas ,Comfy,£5,Bristol\n"
    "2,p3,Drill,DIY Tools & Materials / Drills,Works,free,Leeds\n"
    "3,p4,Thing,,Something,£3,Leeds\n"
    "4,p1,Kettle again,Appliances,Duplicate,£2,Leeds\n"
    "5,p5,Lonely,Appliances / Fridges,No photos,£12.00,Leeds\n"
    "6,p6,Broken,Appliances,one,field,too many,Leeds\n"
    "7,p7,Chair,Office Furniture & Equipment / Chairs,Lost photo,£40,Leeds\n"
)


# image id -> (product id, what its file holds); None: no file on disk
IMAGE_ROWS = [
    ("i1", "p1", "red jpeg"), ("i2", "p1", "rgba png"), ("i3", "p2", "grey jpeg"),
    ("i4", "p2", "truncated"), ("i5", "p3", "red jpeg"), ("i6", "p4", "red jpeg"),
    ("i7", "p99", "red jpeg"), ("i1", "p1", None), ("i8", "p7", None), ("../evil", "p1", None),
]


def _file_bytes(kind: str, image_bytes) -> bytes:
    if kind == "rgba png":
        return image_bytes(40, 90, (0, 0, 255, 255), mode="RGBA", fmt="PNG")
    if kind == "grey jpeg":
        return image_bytes(70, 70, 128, mode="L")
    if kind == "truncated":  # noise: the cut falls in the scan data, not in the header
        noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, "JPEG")
        return buffer.getvalue()[: len(buffer.getvalue()) // 2]
    return image_bytes(80, 50)  # "red jpeg"

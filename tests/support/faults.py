"""Fault injection for tests: a save that dies half-way, as a full disk would."""




def partial_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
    f.write(b"PK\x03\x04 half a checkpoint")
    raise OSError("No space left on device")

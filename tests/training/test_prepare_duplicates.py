"""training.prepare_duplicates: which copies of a picture a prepared dataset keeps."""

from PIL import Image

from training.prepare_duplicates import CONFLICT, COPY, find_duplicates, picture_digest


def test_find_duplicates_keeps_the_first_copy_within_a_category():
    found = find_duplicates([("b", "Toys", "x"), ("c", "Toys", "x"), ("a", "Toys", "x"),
                             ("d", "Toys", "y")])

    assert found.dropped == {"b": COPY, "c": COPY}
    assert found.copies == [["a", "b", "c"]]
    assert found.conflicts == []


def test_find_duplicates_drops_every_copy_under_several_categories():
    found = find_duplicates([("s1", "Signs", "x"), ("t1", "Transport", "x"),
                             ("s2", "Signs", "x"), ("t2", "Transport", "y")])

    assert found.dropped == {"s1": CONFLICT, "s2": CONFLICT, "t1": CONFLICT}
    assert found.conflicts == [{"categories": ["Signs", "Transport"],
                                "images": ["s1", "s2", "t1"]}]
    assert found.copies == []


def test_find_duplicates_does_not_depend_on_the_reading_order():
    images = [("a", "A", "1"), ("b", "A", "1"), ("c", "B", "2"), ("d", "C", "2"), ("e", "A", "3")]

    assert find_duplicates(images) == find_duplicates(reversed(images))
    assert find_duplicates([("only", "A", "1")]).dropped == {}


def test_picture_digest_compares_pixels_not_files():
    picture = Image.new("RGB", (4, 3), (10, 20, 30))
    picture.putpixel((1, 1), (0, 0, 0))
    same = picture.copy()
    same.info["comment"] = "another file's metadata"

    assert picture_digest(same) == picture_digest(picture)
    changed = picture.copy()
    changed.putpixel((2, 2), (10, 20, 31))
    assert picture_digest(changed) != picture_digest(picture)
    # the same bytes in another shape are another picture
    assert picture_digest(Image.frombytes("RGB", (3, 4), picture.tobytes())) != picture_digest(picture)


def test_find_duplicates_without_drop_only_lists_the_groups():
    found = find_duplicates([("a", "A", "1"), ("b", "A", "1"), ("c", "A", "2"), ("d", "B", "2")],
                            drop=False)

    assert (found.drop, found.dropped) == (False, {})
    assert found.copies == [["a", "b"]]
    assert found.conflicts == [{"categories": ["A", "B"], "images": ["c", "d"]}]

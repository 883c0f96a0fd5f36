"""The prepare report's text and its no-usable-image error, from hand-made reports.

The counting (build_report) is pinned end to end in tests/training/test_prepare.py.
"""

from training.prepare_report import format_report, nothing_usable

FOLDER_REPORT = {
    "source": "folder", "out": "clean", "image_size": 64, "cleaned_now": 2, "already_clean": 1,
    "seconds": 0.4, "categories": {"Appliances": 2, "Home": 1},
    "images": {"total": 5, "kept": 3, "dropped": {"unreadable image file": 1, "not an image": 1}},
    "unreadable": [{"image_id": "a", "file": "in/Appliances/a.jpg", "error": "truncated"}],
    "duplicates": {"dropped": True, "copies": [], "conflicts": []},
    "warnings": ["category folder 'Toys': every image file is unreadable; the category is left out"],
}


def test_format_report_of_a_folder_lists_every_section():
    assert format_report(FOLDER_REPORT) == (
        "prepared 3 images in 2 categories at 64x64 px from the image folder into clean "
        "(2 cleaned now, 1 already clean, 0.4 s)\n"
        "images: 5 files, 3 kept, 2 dropped\n"
        "       1  unreadable image file\n"
        "       1  not an image\n"
        "unreadable image files (1):\n"
        "  in/Appliances/a.jpg: truncated\n"
        "kept images per category:\n"
        "       2  Appliances\n"
        "       1  Home\n"
        "warning: category folder 'Toys': every image file is unreadable; the category is left out\n")


def test_format_report_of_an_export_counts_products_then_images():
    report = {**FOLDER_REPORT, "source": "export", "unreadable": [], "warnings": [],
              "products": {"total": 4, "kept": 3, "dropped": {"no image row": 1}}}

    lines = format_report(report).splitlines()

    assert lines[0].startswith("prepared 3 images in 2 categories at 64x64 px from the export into clean")
    assert lines[1:5] == ["products: 4 product rows, 3 kept, 1 dropped", "       1  no image row",
                          "images: 5 image rows, 3 kept, 2 dropped", "       1  unreadable image file"]
    assert not any(line.startswith(("unreadable", "warning")) for line in lines)


def test_nothing_usable_names_the_reasons_and_the_first_warning():
    error = nothing_usable(FOLDER_REPORT)

    assert str(error) == ("no usable images: 5 image entries read, all dropped (unreadable image file: 1, "
                          "not an image: 1); category folder 'Toys': every image file is unreadable; "
                          "the category is left out")


def test_nothing_usable_without_reasons_or_warnings():
    report = {"images": {"total": 0, "kept": 0, "dropped": {}}, "warnings": []}

    assert str(nothing_usable(report)) == "no usable images: 0 image entries read, all dropped"


def test_format_report_lists_the_first_pictures_under_several_categories():
    conflicts = [{"categories": ["A", "B"], "images": [f"A/{i}.png", f"B/{i}.png"]}
                 for i in range(12)]
    report = {**FOLDER_REPORT, "duplicates": {"dropped": True, "copies": [["A/x.png", "A/y.png"]],
                                              "conflicts": conflicts}}

    lines = format_report(report).splitlines()

    start = lines.index("the same picture under several categories, every copy dropped (12):")
    assert lines[start + 1] == "  A/0.png = B/0.png"
    assert lines[start + 10:start + 12] == ["  A/9.png = B/9.png", "  ... 2 more in report.json"]
    assert lines[start + 12] == "kept images per category:"

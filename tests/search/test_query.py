"""python -m search.query against a real built index (session fixtures ``search_index``,
``text_search_index``): text, photo, both, filters, JSON lines, and the user errors."""

import json
from pathlib import Path

import pytest

from common.cli import UserError
from search import query


def run_query(*argv: str):
    return query.main(query.get_args_parser().parse_args(list(argv)))


def photo_path(search_index, image_id: str) -> Path:
    return search_index["data"] / "images" / f"{image_id}.png"


def test_text_query_on_an_image_index_is_lexical_and_prints_a_table(search_index, capsys):
    result = run_query("--index", str(search_index["index"]), "--text", "kettle", "-k", "3")

    assert result.retriever == "lexical"  # the CNN reads no text: BM25 alone
    assert [hit.category for hit in result.hits] == ["Appliances"] * 3
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 result(s), lexical")
    assert len(out) == 4 and all(hit.id in line for hit, line in zip(result.hits, out[1:], strict=True))


def test_photo_query_embeds_the_photo_with_the_indexs_run(search_index):
    result = run_query("--index", str(search_index["index"]), "--image",
                       str(photo_path(search_index, "img-01-002-0")), "-k", "1",
                       "--retriever", "dense")

    assert result.retriever == "dense"
    [hit] = result.hits
    assert hit.matched == ["dense"] and hit.id == "prod-01-002"  # the photo's own listing


def test_filters_and_json_lines(search_index, capsys):
    result = run_query("--index", str(search_index["index"]), "--text", "kettle pram trainers",
                       "-k", "50", "--category", "Appliances", "--json")

    assert result.hits and {hit.category for hit in result.hits} == {"Appliances"}
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [hit.id for hit in result.hits]


def test_text_index_embeds_the_query_text(text_search_index):
    result = run_query("--index", str(text_search_index["index"]), "--text", "pram", "-k", "3")
    assert result.retriever == "fused"
    assert any("dense" in hit.matched for hit in result.hits)


def test_text_on_an_image_index_with_text_vectors_is_searched_by_them(multimodal_search_index):
    result = run_query("--index", str(multimodal_search_index["index"]), "--text", "pram", "-k", "3",
                       "--retriever", "text_dense")

    assert result.retriever == "text_dense"
    assert [hit.category for hit in result.hits] == ["Baby & Kids Stuff"] * 3
    assert all(hit.matched == ["text_dense"] and hit.text_dense_score for hit in result.hits)


@pytest.mark.parametrize(("argv", "error"), [
    ((), "give --text, --image or both"),
    (("--text", "kettle", "--near", "Londn"), "Londn"),
])
def test_bad_queries_are_user_errors(search_index, argv, error):
    with pytest.raises(UserError, match=error):
        run_query("--index", str(search_index["index"]), *argv)


def test_photo_on_a_text_index_is_refused(text_search_index, search_index):
    with pytest.raises(UserError, match="does not embed photos"):
        run_query("--index", str(text_search_index["index"]), "--image",
                  str(photo_path(search_index, "img-01-002-0")))


def test_unreadable_photo_names_the_file(search_index, tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(UserError, match=f"cannot read --image {missing}"):
        run_query("--index", str(search_index["index"]), "--image", str(missing))

"""Response bodies of the search routes, with the examples /docs shows."""

from pydantic import BaseModel, ConfigDict, Field

_HIT_EXAMPLE = {
    "id": "4b3a1f0e-8c1d-4e0b-9f57-0c3c4b1f2d9a",
    "title": "Sofas - barely used | in Leeds, West Yorkshire | Gumtree",
    "price": 120.0,
    "location": "Leeds, West Yorkshire",
    "category": "Home & Garden",
    "score": 0.0325,
    "matched": ["dense", "lexical"],
    "dense_rank": 2,
    "dense_score": 0.93,
    "lexical_rank": 1,
    "lexical_score": 7.41,
    "url": "/listings/4b3a1f0e-8c1d-4e0b-9f57-0c3c4b1f2d9a",
    "image_url": "/listings/4b3a1f0e-8c1d-4e0b-9f57-0c3c4b1f2d9a/image",
}


class SearchHit(BaseModel):
    """One ranked listing and why it matched."""

    id: str
    title: str
    price: float | None = Field(description="in GBP; null when the listing has none")
    location: str
    category: str = Field(description="root category")
    score: float = Field(description="fused: the fused score of the index's ranking (weighted "
                         "reciprocal rank or normalised scores); dense: cosine similarity; "
                         "lexical: BM25 (higher is better)")
    matched: list[str] = Field(description="the retrievers that found it: dense, lexical, "
                               "text_dense (an index with text vectors)")
    dense_rank: int | None = None
    dense_score: float | None = Field(None, description="cosine similarity to the query embedding")
    lexical_rank: int | None = None
    lexical_score: float | None = Field(None, description="BM25 score of the query text")
    text_dense_rank: int | None = None
    text_dense_score: float | None = Field(None, description="cosine similarity of the query "
                                           "text's and the listing's pretrained-encoder vectors")
    url: str = Field(description="GET it for the full record")
    image_url: str = Field(description="GET it for the main photo (PNG)")


class SearchResponse(BaseModel):
    """Ranked listings for one query."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "retriever": "fused", "personalised": False, "embedded_by": "cnn", "took_ms": 3.1,
        "index": "gen-20261201T060000-1a2b3c", "results": [_HIT_EXAMPLE]}]})

    retriever: str = Field(description="what ran: fused, dense, lexical or text_dense")
    personalised: bool = Field(description="the viewed listings shaped the ranking")
    embedded_by: str | None = Field(description="the TorchServe model that embedded the query, "
                                    "or two joined by '+' (a photo by the index's model, the text "
                                    "by 'query' on an index with text vectors); null: no "
                                    "embedding was needed")
    took_ms: float = Field(description="time in the index (embedding excluded)")
    index: str = Field(description="the index generation that answered")
    results: list[SearchHit]


class ListingResponse(BaseModel):
    """A listing's full record."""

    id: str
    title: str
    description: str
    price: float | None
    location: str
    category: str
    category_path: str
    image_ids: list[str]
    image_urls: list[str]
    similar_url: str

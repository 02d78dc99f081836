"""Product search over photos and listings with the LangChain compressor.

Catalogue entries are LangChain documents: a listing (``page_content``), a product photo
(``metadata["image_path"]``), or both. Lychee ranks them for a shopper's text query, a
photo the shopper uploads, or a photo plus a text refinement, with the
``product_search`` template; every score is on the same [0, 1] scale.

Run:
    python examples/product_search.py --model /tmp/tiny-lychee --build-tiny
"""

from __future__ import annotations

from pathlib import Path

from _common import demo_images, line, parse_args
from langchain_core.documents import Document

from lychee_integrations.langchain import LycheeRerank

PHOTOS = {
    "red-sneaker": (210, 30, 40),
    "blue-backpack": (30, 70, 200),
    "yellow-raincoat": (240, 200, 30),
    "green-lamp": (40, 160, 70),
}


def catalogue(photos: dict[str, Path]) -> list[Document]:
    return [
        Document("Red running shoes, breathable mesh, size 42", metadata={"image_path": str(photos["red-sneaker"])}),
        Document("", metadata={"image_path": str(photos["blue-backpack"]), "sku": "BP-7"}),
        Document("Waterproof raincoat in bright yellow", metadata={"image_path": str(photos["yellow-raincoat"])}),
        Document("", metadata={"image_path": str(photos["green-lamp"]), "sku": "LMP-2"}),
        Document("Wireless headphones with noise cancelling"),
    ]


def describe(doc: Document) -> str:
    photo = doc.metadata.get("image_path", "").rsplit("/", 1)[-1]
    text = doc.page_content or f"(photo only, sku {doc.metadata.get('sku')})"
    return f"{text} {'[' + photo + ']' if photo else '[no photo]'}"


def main() -> None:
    args = parse_args(__doc__ or "")
    photos = demo_images(PHOTOS)
    docs = catalogue(photos)
    reranker = LycheeRerank(model=args.model, device=args.device, task="product_search", top_n=3)

    query = "red running shoes"
    print(f"text query: {query}")
    for rank, doc in enumerate(reranker.compress_documents(docs, query), 1):
        print(line(rank, doc.metadata["relevance_score"], describe(doc)))

    shopper_photo = photos["yellow-raincoat"]
    print(f"image query: {shopper_photo.name}")
    for rank, result in enumerate(reranker.rerank(docs, {"image": str(shopper_photo)})[:3], 1):
        print(line(rank, result.score, describe(docs[result.index])))

    refined = {"text": "something like this, but for the rain", "image": str(shopper_photo)}
    print(f"text+image query: {refined['text']!r} + {shopper_photo.name}")
    for rank, doc in enumerate(reranker.compress_documents(docs, refined), 1):
        print(line(rank, doc.metadata["relevance_score"], describe(doc)))


if __name__ == "__main__":
    main()

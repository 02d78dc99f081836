"""Mixed text and image retrieval in LlamaIndex, put on one scale by Lychee.

``MultiModalVectorIndexRetriever`` returns text nodes scored by a text embedding and image
nodes scored by an image embedding, concatenated. The two similarities live in different
spaces, so their numbers cannot be compared: sorting the merged list by them ranks a
modality, not relevance. Lychee reads the query with each candidate, text or image, and
scores every one as P(relevant) on the same [0, 1] scale.

The two toy embedding models below (hashing bag-of-words for text, mean colour for images)
stand in for your text embedder and CLIP, to keep the example offline.

Run:
    python examples/llamaindex_multimodal.py --model /tmp/tiny-lychee --build-tiny
"""

from __future__ import annotations

import zlib
from typing import Any

from _common import demo_images, line, parse_args
from llama_index.core.embeddings import BaseEmbedding, MultiModalEmbedding
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageNode, ImageType, NodeWithScore, QueryBundle, TextNode
from PIL import Image

from lychee_integrations.llama_index import LycheeRerank

COLORS = {"red": (220, 30, 30), "yellow": (240, 210, 40), "blue": (40, 90, 220), "green": (40, 170, 60)}
PASSAGES = [
    "Ripe strawberries are bright red and sweet.",
    "A ripe banana has a yellow peel.",
    "On a clear day the sky looks blue because of Rayleigh scattering.",
    "Fresh spinach leaves are dark green.",
]
QUESTION = "Which fruit is red?"


class HashingTextEmbedding(BaseEmbedding):
    """Toy text embedding: hashed bag of words (stand-in for your text embedder)."""

    dim: int = 64

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in text.lower().replace(".", " ").replace("?", " ").split():
            vector[zlib.crc32(word.encode()) % self.dim] += 1.0
        return vector

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


class ColourEmbedding(MultiModalEmbedding):
    """Toy image embedding: mean colour; text maps to the colours it names (stand-in for CLIP)."""

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        with Image.open(img_file_path) as img:  # type: ignore[arg-type]
            mean = img.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        return [channel / 255 + 0.05 for channel in mean]  # type: ignore[union-attr]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return self._get_image_embedding(img_file_path)

    def _get_text_embedding(self, text: str) -> list[float]:
        named = [rgb for name, rgb in COLORS.items() if name in text.lower()] or [(128, 128, 128)]
        return [sum(rgb[c] for rgb in named) / len(named) / 255 + 0.05 for c in range(3)]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)


def label(hit: NodeWithScore) -> str:
    node = hit.node
    if isinstance(node, ImageNode):
        return f"image {node.node_id}"
    return f"text  {node.get_content()}"


def main() -> None:
    args = parse_args(__doc__ or "")
    paths = demo_images(COLORS)
    nodes: list[Any] = [TextNode(text=p, id_=f"passage-{k}") for k, p in enumerate(PASSAGES)]
    nodes += [ImageNode(image_path=str(p), metadata={"file_path": str(p)}, id_=f"{n}.png") for n, p in paths.items()]
    index = MultiModalVectorStoreIndex(nodes, embed_model=HashingTextEmbedding(), image_embed_model=ColourEmbedding())
    retriever = index.as_retriever(similarity_top_k=3, image_similarity_top_k=3)

    print(f"question: {QUESTION}")
    retrieved = retriever.retrieve(QUESTION)
    print("retriever output, merged by raw similarity (two embedding spaces: not comparable):")
    for rank, hit in enumerate(sorted(retrieved, key=lambda h: -(h.score or 0.0)), 1):
        print(f"  {rank}. [{hit.score or 0.0:.3f} raw    ] {label(hit)}")

    reranker = LycheeRerank(
        model=args.model,
        device=args.device,
        top_n=4,
        instruction="Given a question, retrieve the passages or images that help answer it",
    )
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(is_chat_model=True), multimodal=True, node_postprocessors=[reranker]
    )
    response = engine.query(QUESTION)
    print("after Lychee, one scale for text and images (top 4):")
    for rank, hit in enumerate(response.source_nodes, 1):
        print(line(rank, hit.score or 0.0, label(hit)))

    # Image query: which candidates match this photo? (query_str may be empty.)
    image_query = QueryBundle("", image_path=str(paths["red"]))
    found = retriever.image_to_image_retrieve(str(paths["red"])) + retriever.retrieve("red")
    candidates = list({hit.node.node_id: hit for hit in found}.values())  # one entry per node
    reranked = LycheeRerank(model=args.model, device=args.device, top_n=3, task="image_search").postprocess_nodes(
        candidates, image_query
    )
    print("image query red.png, reranked (top 3):")
    for rank, hit in enumerate(reranked, 1):
        print(line(rank, hit.score or 0.0, label(hit)))


if __name__ == "__main__":
    main()

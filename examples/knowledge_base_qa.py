"""Enterprise knowledge-base Q&A in LlamaIndex with the ``knowledge_base_guide`` template.

How-to questions should surface step-by-step guides, not pages that merely mention the
topic. The template tells Lychee exactly that; ``score_threshold=0.4`` drops what the
model judges not relevant (scores above 0.7 are strong, 0.4 to 0.7 partial).
MockEmbedding and MockLLM keep the example offline: swap in your own models.

Run:
    python examples/knowledge_base_qa.py --model /tmp/tiny-lychee --build-tiny
"""

from __future__ import annotations

from _common import line, parse_args
from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeWithScore, TextNode

from lychee_integrations.instructions import get_template
from lychee_integrations.llama_index import LycheeRerank

ARTICLES = {
    "vpn-setup": "How to set up the VPN: 1. Install the client from the portal. 2. Sign in with SSO. "
    "3. Choose the nearest gateway and connect.",
    "password-reset": "How to reset your password: 1. Open Settings. 2. Choose Security. "
    "3. Click 'Reset password' and follow the link sent to your email.",
    "password-policy": "Password policy: passwords must have 12 characters and are rotated every 90 days.",
    "expense-report": "How to file an expense report: 1. Open Finance. 2. Add receipts. 3. Submit for approval.",
    "security-news": "This quarter the security team blocked 1,200 phishing emails.",
}
QUESTION = "How do I reset my password?"


def main() -> None:
    args = parse_args(__doc__ or "")
    template = get_template("knowledge_base_guide")
    print(f"template {template.name}: {template.instruction}")

    nodes = [TextNode(text=text, id_=name) for name, text in ARTICLES.items()]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=16))  # your embedding model here

    # Every candidate, best first, to see how the model reads them.
    everything = LycheeRerank(model=args.model, device=args.device, task=template.name, top_n=None)
    print(f"question: {QUESTION}")
    print("all articles, reranked:")
    ranked = everything.postprocess_nodes([NodeWithScore(node=n) for n in nodes], query_str=QUESTION)
    for rank, hit in enumerate(ranked, 1):
        print(line(rank, hit.score or 0.0, hit.node.node_id))

    # The query engine keeps at most 3 articles scoring 0.4 or more (same shared model).
    reranker = LycheeRerank(model=args.model, device=args.device, task=template.name, top_n=3, score_threshold=0.4)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=5, node_postprocessors=[reranker])
    response = engine.query(QUESTION)
    print(f"sources kept by the query engine (top 3, score >= 0.4): {len(response.source_nodes)}")
    for rank, hit in enumerate(response.source_nodes, 1):
        print(line(rank, hit.score or 0.0, hit.node.node_id))


if __name__ == "__main__":
    main()

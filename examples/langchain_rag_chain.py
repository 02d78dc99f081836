"""A LangChain RAG chain whose retriever reranks its candidates with Lychee.

The vector store over-fetches (k=8) and Lychee keeps the 3 best, with their scores in
``metadata["relevance_score"]``. The fake embeddings and the echoing "LLM" keep the
example offline: swap in your embedding model and chat model.

Run:
    python examples/langchain_rag_chain.py --model /tmp/tiny-lychee --build-tiny
    python examples/langchain_rag_chain.py  # the real vec-ai/lychee-rerank-mm (GPU advised)
"""

from __future__ import annotations

from _common import line, parse_args
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from lychee_integrations.langchain import LycheeRerank

PASSAGES = [
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Berlin is the capital of Germany and its largest city.",
    "The Louvre in Paris is the world's most-visited art museum.",
    "Mount Everest is the highest mountain above sea level.",
    "France borders Belgium, Luxembourg, Germany, Switzerland, Italy and Spain.",
    "The Seine flows through Paris before reaching the English Channel.",
    "Bananas are an excellent source of potassium.",
]
QUESTION = "What is the capital of France?"


def main() -> None:
    args = parse_args(__doc__ or "")
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=64))  # your embedding model here
    store.add_documents([Document(p, id=f"passage-{k}") for k, p in enumerate(PASSAGES)])

    reranker = LycheeRerank(model=args.model, device=args.device, top_n=3, task="factual_qa")
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=store.as_retriever(search_kwargs={"k": 8})
    )

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"- ({d.metadata['relevance_score']:.2f}) {d.page_content}" for d in docs)

    prompt = ChatPromptTemplate.from_template("Answer from the context.\nContext:\n{context}\n\nQuestion: {question}")
    echo_llm = RunnableLambda(lambda p: p.to_string())  # your chat model here, e.g. ChatOpenAI()
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | echo_llm

    print(f"question: {QUESTION}")
    print("reranked context (best first):")
    for rank, doc in enumerate(retriever.invoke(QUESTION), 1):
        print(line(rank, doc.metadata["relevance_score"], doc.page_content))
    print("prompt sent to the LLM:")
    print(chain.invoke(QUESTION))


if __name__ == "__main__":
    main()

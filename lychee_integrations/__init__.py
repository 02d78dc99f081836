"""Lychee multimodal reranker for LangChain and LlamaIndex."""

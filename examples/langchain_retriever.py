"""scanrag inside a LangChain application, offline: the bundled scans indexed by scanrag, a
ScanRAGRetriever feeding an LCEL chain (retriever → numbered evidence with page and box →
prompt), and ScanRAGLoader's page Documents with their region boxes.

pip install -e '.[langchain]'
python examples/langchain_retriever.py

The index lives in out/langchain-index (a second run re-indexes nothing). The chain ends at
the prompt to stay offline: append any chat model (`| ChatOpenAI(...)`, `| ChatOllama(...)`)
and it answers with [n] markers that point at the printed regions.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from scanrag import Index
from scanrag.connectors.langchain import ScanRAGLoader, ScanRAGRetriever

ROOT = Path(__file__).resolve().parent.parent
SCANS = ROOT / "examples" / "scans"
DATA = ROOT / "out" / "langchain-index"
QUESTIONS = [
    "What is the total due on invoice INV-1001?",
    "华联超市小票号044571的合计金额是多少？",
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the numbered evidence only and cite it as [n]."),
        ("human", "Evidence:\n{evidence}\n\nQuestion: {question}"),
    ]
)


def evidence(documents: list[Document]) -> str:
    """Each retrieved region, numbered as its citation, with where it is on which page."""
    blocks = []
    for doc in documents:
        meta = doc.metadata
        where = f"{Path(meta['source']).name} page {meta['page']} bbox {meta['bbox']}"
        blocks.append(f"[{meta['n']}] ({where})\n{meta['text']}")
    return "\n\n".join(blocks)


def main() -> None:
    with Index(data_dir=DATA) as index:
        report = index.ingest([SCANS])
    print(f"indexed: added {report.added}, unchanged {report.unchanged}")

    with ScanRAGRetriever(data_dir=str(DATA), top_k=3) as retriever:
        chain = {
            "evidence": retriever | RunnableLambda(evidence),
            "question": RunnablePassthrough(),
        } | PROMPT
        for question in QUESTIONS:
            print(f"\nQ: {question}")
            print(chain.invoke(question).to_messages()[-1].content)

    print("\nScanRAGLoader (parses the file: a few seconds of OCR):")
    for page in ScanRAGLoader(SCANS / "invoice_INV-1001.jpg").lazy_load():
        meta = page.metadata
        print(f"  {Path(meta['source']).name} page {meta['page']}: {len(meta['regions'])} regions")
        for region in meta["regions"][:3]:
            text = " ".join(page.page_content[region["start"] : region["end"]].split())
            print(f"    {region['label']:<6} bbox={region['bbox']} {text[:60]!r}")


if __name__ == "__main__":
    main()

"""Regenerate the example scans in examples/scans (synthetic documents, scanner-like grain).

python examples/make_scans.py
"""

from __future__ import annotations

from pathlib import Path

from scanrag import testing

HERE = Path(__file__).parent / "scans"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    testing.invoice().image(noise=3, seed=1).save(HERE / "invoice_INV-1001.jpg", quality=85)
    testing.receipt_zh().image(noise=3, seed=2).save(HERE / "receipt_044571.jpg", quality=85)
    form = testing.form().image(noise=2, seed=3).convert("L")  # a grey scan, as PNG
    form.save(HERE / "claim_form_APP-96452.png", optimize=True)
    report = testing.two_column_report()
    testing.image_pdf([report.image(noise=3, seed=4)], HERE / "annual_report_2024.pdf")
    for path in sorted(HERE.iterdir()):
        print(f"{path.name}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()

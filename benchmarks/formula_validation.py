"""How long validating a calculated column's formula takes on a large panel.

    uv run python -m benchmarks.formula_validation [--repeat 2000] [--number 5]

The panel has 200 columns: 100 base columns of every type and 100 calculated columns in ten
chains of ten (each link reads the previous one, plus some arithmetic, IF and CONCAT). Timed
is `validate` of a new formula that reads several columns including the tail of a chain
(parse, type check, result check, cycle search through the chain), and, as the worst case,
one that reads the tail of every chain, so that every formula of the panel is read. The
target is < 5 ms per validation, judged on the 99th percentile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit

from panels.column.formula import validate

TARGET_MS = 5.0
BASE_TYPES = (
    "text",
    "number",
    "date",
    "datetime",
    "boolean",
    "select",
    "multi_select",
    "user",
    "file",
    "custom",
)
CHAINS = 10
CHAIN_LENGTH = 10


def base_columns() -> dict[str, str]:
    """Ten columns of each type; the text ones have spaces in their names, so need braces."""
    columns: dict[str, str] = {}
    for index in range(100):
        column_type = BASE_TYPES[index % len(BASE_TYPES)]
        name = f"{column_type} field {index}" if column_type == "text" else f"{column_type}_{index}"
        columns[name] = column_type
    return columns


def calculated_columns() -> tuple[dict[str, str], dict[str, str]]:
    """Types and formulas of the chains: even chains compute numbers, odd ones text."""
    types: dict[str, str] = {}
    formulas: dict[str, str] = {}
    for chain in range(CHAINS):
        number = f"number_{chain * 10 + 1}"
        flag = f"boolean_{chain * 10 + 4}"
        for link in range(CHAIN_LENGTH):
            name = f"calc_{chain}_{link}"
            previous = f"calc_{chain}_{link - 1}"
            if chain % 2 == 0:
                types[name] = "number"
                formulas[name] = (
                    f"IF({flag}, ROUND({number} * 1.2, 2), ABS({number} - 3))"
                    if link == 0
                    else f"IF({previous} > {link * 10}, {previous} * 2 + {number}, {previous} - 1)"
                )
            else:
                types[name] = "text"
                text = f"{{text field {chain * 10}}}"
                formulas[name] = (
                    f"CONCAT(UPPER({text}), ' #', {number})"
                    if link == 0
                    else f"{previous} & '/' & IF({flag}, LOWER({text}), TRIM({text}))"
                )
    return types, formulas


def measure(
    formula: str, columns: dict[str, str], formulas: dict[str, str], args: argparse.Namespace
) -> list[float]:
    """Milliseconds per validation, one figure per repetition."""

    def validate_new_column() -> None:
        validate(formula, "new column", "number", columns, formulas)

    validate_new_column()  # fail fast on a broken formula, and warm up
    timer = timeit.Timer(validate_new_column)
    totals = timer.repeat(repeat=args.repeat, number=args.number)
    return [total / args.number * 1000 for total in totals]


def main() -> None:
    parser = argparse.ArgumentParser(description="Time formula validation on a 200-column panel.")
    parser.add_argument("--repeat", type=int, default=2000, help="timed repetitions")
    parser.add_argument("--number", type=int, default=5, help="validations per repetition")
    args = parser.parse_args()

    calculated_types, formulas = calculated_columns()
    columns = base_columns() | calculated_types
    chain_tail = f"calc_0_{CHAIN_LENGTH - 1}"
    scenarios = {
        "reads one chain tail": (
            f"IF(AND({chain_tail} > 100, boolean_4),"
            f" ROUND({chain_tail} * number_11 + number_21, 2),"
            f" MAX(number_31, LEN({{text field 40}}), DATEDIFF(date_2, TODAY(), 'days')))"
        ),
        "reads every chain tail": " + ".join(
            f"LEN(calc_{chain}_{CHAIN_LENGTH - 1})"
            if chain % 2
            else f"calc_{chain}_{CHAIN_LENGTH - 1}"
            for chain in range(CHAINS)
        ),
    }

    # Timings on a busy machine are noisy upwards; the load says how busy it was.
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs")
    print(
        f"panel: {len(columns)} columns ({len(columns) - len(formulas)} base, {len(formulas)}"
        f" calculated in {CHAINS} chains of {CHAIN_LENGTH}); {args.repeat} x {args.number} runs"
    )
    verdicts = []
    for label, formula in scenarios.items():
        per_call = sorted(measure(formula, columns, formulas, args))
        p99 = per_call[min(len(per_call) - 1, round(0.99 * len(per_call)))]
        print(
            f"{label:>24}: min {per_call[0]:.3f} ms, median {statistics.median(per_call):.3f} ms,"
            f" p99 {p99:.3f} ms"
        )
        verdicts.append((label, p99))
    typical_p99 = verdicts[0][1]
    outcome = "MEETS" if typical_p99 < TARGET_MS else "MISSES"
    print(
        f"verdict: {outcome} the target: validate p99 {typical_p99:.3f} ms vs < {TARGET_MS:g} ms"
        f" (worst case, every chain: p99 {verdicts[1][1]:.3f} ms)"
    )


if __name__ == "__main__":
    main()

"""The master patient index's error codes."""

from __future__ import annotations

from medledger.errors import ConfigError, InputError, MedLedgerError, define

# The bootstrap commands' failures never cross the HTTP API (the index service's routes come later).
define("mpi_columns_invalid", 422, "a --columns mapping is malformed or names columns the CSV lacks", api=False)
define("mpi_csv_unreadable", 422, "a patient list cannot be read as a UTF-8 CSV with a header row", api=False)
define("mpi_output_unwritable", 500, "the pairs file cannot be written", api=False)
define("mpi_key_invalid", 500, "the consortium linkage key is missing or not at least 16 bytes of hex", api=False)


class ColumnsInvalid(InputError):
    code = "mpi_columns_invalid"


class CsvUnreadable(InputError):
    code = "mpi_csv_unreadable"


class KeyInvalid(ConfigError):
    code = "mpi_key_invalid"


class OutputUnwritable(MedLedgerError):
    code = "mpi_output_unwritable"

"""ReportService."""

"""Writing a plan: plan.json (versioned schema), Slicer markups, .tfm, PDF report.

Owns the plan files and their JSON schema (plan_files, plan_schema.json) and
the PDF report (report_pdf, the one module allowed to use matplotlib, through
Agg/PdfPages only; its CT and US pictures are drawn by report_views). May import every planner wing below it and
``registration``.
"""

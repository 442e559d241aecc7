"""The plan for people and files: text, tables, reports, the plan file read back, the emitted model.

    text           an aligned table, a markdown table, the model summary's lines
    plan_text      a plan as text; decoder_text for decoders; passes_text for the pipelines block
    console        rich tables at a terminal, plain text everywhere else
    progress       the one progress bar: on stderr, only at a terminal, only after a moment
    planfile       read a plan JSON back (baselines, diffs); the schema
    emit           write the chosen model (atomically, never over the input)
    report/        `plan report`: HTML or markdown with a roofline chart
    fleet_text     the plan's fleet block as a table and a line
    deploy         --emit-deploy: Triton config.pbtxt and a Kubernetes manifest, parsed back before writing
    triton_proto   the part of Triton's ModelConfig we write, as a protobuf message (for that check)
"""

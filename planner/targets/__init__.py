"""Hardware as validated data: what each target has and reaches, and what this machine is.

    target     the Target type (units in field names)
    rates      the Rates a roofline asks for a kernel's terms; SPEC, the spec sheet's (calibrated ones:
               planner.calibration.rates)
    catalog    load and validate hwtargets/*.toml; look targets up by name
    host       detect this machine (nominal ceilings until `plan calibrate`)
"""

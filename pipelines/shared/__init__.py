"""Code more than one stage needs: measuring a candidate model, the synthesizer. Stages import these,
never each other."""

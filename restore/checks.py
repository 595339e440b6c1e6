"""Input checks shared by the restoration steps: one line that says what is wrong and what to connect."""

# why a diffusion output can hold NaN: said wherever such pixels are refused
FP16_OVERFLOW_HINT = "a face prior in fp16 can overflow: set FaceDiffusionLoader's precision to bf16 or fp32"


def expect(value, cls, what: str, source: str):
    """`value` if it is a `cls`, else a one-line error that says which output to connect."""
    if not isinstance(value, cls):
        raise TypeError(f"{what} got a {type(value).__name__}: connect the {source}")
    return value

"""Architecture values, the MnasNet ensemble search space, model builders and analytic counts.

Imports none of the project's other packages.
"""

from search_space.blockstring import decode_block, decode_blocks, encode_block, encode_blocks, round_filters, scale_width
from search_space.errors import NasError, SpecError, UserError
from search_space.layers import Counts, Layer, count, layer_plan
from search_space.space import MnasNetSpace, adapt_for_small_input, canonical_network, canonical_skips, network_id
from search_space.spec import (
    Activation,
    ArchSpec,
    BlockSpec,
    ConvOp,
    EnsembleSpec,
    MobileNetSpec,
    SkipOp,
    WideResNetSpec,
    canonical_json,
    from_dict,
    from_json,
    spec_id,
    to_json,
)

__all__ = [
    "Activation", "ArchSpec", "BlockSpec", "ConvOp", "Counts", "EnsembleSpec", "Layer", "MnasNetSpace",
    "MobileNetSpec", "NasError", "SkipOp", "SpecError", "UserError", "WideResNetSpec", "adapt_for_small_input",
    "canonical_json", "canonical_network", "canonical_skips", "count", "decode_block", "decode_blocks", "encode_block", "encode_blocks",
    "from_dict", "from_json", "layer_plan", "network_id", "round_filters", "scale_width", "spec_id", "to_json",
]

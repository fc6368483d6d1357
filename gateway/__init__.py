"""The OpenAI-compatible gateway in front of router_core.

litellm reads ``LITELLM_LOCAL_MODEL_COST_MAP`` once, when it is first imported, and otherwise
fetches its model cost map from the network. Setting the default here, in the package every
gateway module belongs to, makes that hold whatever imports litellm first (the only environment
default the package sets; litellm's own settings are applied by
:func:`gateway.litellm_direct.configure`).
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

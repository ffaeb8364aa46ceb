"""surrogate_al: active-learning campaigns that build surrogate models of expensive simulators."""

from surrogate_al.errors import SurrogateALError
from surrogate_al.space import Dimension, InputSpace

__version__ = "0.1.0"

__all__ = ["Dimension", "InputSpace", "SurrogateALError", "__version__"]

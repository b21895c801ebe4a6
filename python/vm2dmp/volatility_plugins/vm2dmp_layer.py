# For `vol -p <this folder>` when the volatility3 plugins shim is not installed (volatility3
# run from a clone, or a volatility3 installed elsewhere than vm2dmp): importing it registers
# vm2dmp's layer for Hyper-V saved states (see vm2dmp.volatility).
from vm2dmp.volatility import Vm2dmpLayer, Vm2dmpStacker  # noqa: F401

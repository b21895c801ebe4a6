# Installed by the vm2dmp wheel: volatility3 imports every file of this folder at start-up,
# which registers vm2dmp's layer for Hyper-V saved states (see vm2dmp.volatility).
from vm2dmp.volatility import Vm2dmpLayer, Vm2dmpStacker  # noqa: F401

"""The physics problems: thermo-elasticity, inelasticity, swelling, cohesive interface,
diffusion, furnace heat transfer, process kinetics."""

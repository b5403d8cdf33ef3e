"""From a case's geometry to a distributed DOLFINx mesh (the builders are in meshes/)."""

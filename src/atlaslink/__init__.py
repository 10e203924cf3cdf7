"""atlaslink: coordination platform of the ATLAS network of special intervention units."""

__version__ = "0.1.0"

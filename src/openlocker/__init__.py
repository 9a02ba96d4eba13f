"""OpenLocker: an open-source smart parcel locker platform."""

__version__ = "0.1.0"

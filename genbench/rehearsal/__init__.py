"""The dress rehearsal of a profile, offline: stand-ins for the models and data a profile names,
written where the real ones would be found, so that the real code paths run on them."""

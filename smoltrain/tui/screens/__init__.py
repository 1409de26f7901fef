"""The app's screens: home, the new-run wizard, the live run screen, the curves viewer, dialogs.
Screens are imported when first shown, so the first screen appears fast. None imports torch."""

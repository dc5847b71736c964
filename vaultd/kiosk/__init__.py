"""The kiosk side: PIV over PC/SC, CMS signatures, the development CA and the virtual PIV card."""

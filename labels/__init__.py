"""QR payloads and label rendering (GS1 Digital Link, SSCC, GSRN): built in the labels issue."""

"""The HTML report and the ParaView views."""

"""Sensors: the triggers that keep the campaign moving and everything fresh."""

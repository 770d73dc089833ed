"""Redline: a crowd-sourced consultation platform."""

"""Modbus RTU register maps (PACE Modbus, Seplos V3) on the library's models: codec, drivers, control."""

"""spikepack.firmware"""

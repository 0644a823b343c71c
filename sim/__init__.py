"""spikepack.sim"""

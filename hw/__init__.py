"""spikepack.hw"""

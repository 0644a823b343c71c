"""spikepack root"""

import LayerShare
print(smoke())

NODES = []  # filled as the node classes land

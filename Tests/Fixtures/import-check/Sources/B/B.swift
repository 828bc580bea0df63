import A

public let b = a + 1

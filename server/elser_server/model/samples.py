"""A fixed, varied text sample for measuring a quantized model's accuracy against its fp32 original."""

ACCURACY_SAMPLE: tuple[str, ...] = (
    "what is splade",
    "how do i reset my router password",
    "best italian restaurants open late near the station",
    "symptoms of iron deficiency in adults",
    "python list comprehension with two conditions",
    "The mitochondria is the powerhouse of the cell, producing most of its chemical energy.",
    "Sparse retrieval models expand queries and documents into weighted vocabulary terms.",
    "The committee postponed the vote until the budget report is published next month.",
    "Heavy rain is expected across the northern region tonight, with flooding possible near rivers.",
    "To install the package, run pip install followed by the package name in a virtual environment.",
    "The museum's new wing displays paintings from the late nineteenth century.",
    "Our quarterly revenue grew by twelve percent, driven mainly by subscriptions in Europe.",
    "The patient was prescribed antibiotics for a bacterial infection of the upper respiratory tract.",
    "A dog chased the cat up the tree while the children watched from the garden.",
    "Elasticsearch stores documents in shards and replicates them across nodes for resilience.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 10;",
    "The train from Paris to Berlin takes about eight hours and crosses three borders.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The recipe calls for two cups of flour, one egg, a pinch of salt and warm milk.",
    "Climate scientists warn that glaciers are retreating faster than predicted a decade ago.",
    "The quarterback threw a long pass in the final seconds to win the championship game.",
    "Remote work has changed how companies think about office space and hiring.",
    "Vaccines train the immune system to recognise a pathogen without causing the disease.",
    "The central bank raised interest rates to slow inflation, surprising some economists.",
    "How many moons does Jupiter have, and which of them could host liquid water?",
    "The software update fixes a memory leak and improves battery life on older phones.",
    "Medieval castles were built with thick stone walls, moats and narrow arrow slits.",
    "Café déjà vu: naïve résumé façade in Zürich",
    "东京是日本的首都 and München liegt in Bayern 🍺",
    (
        "In the early morning the fishing boats left the harbour one after another, their engines echoing off "
        "the cliffs, while gulls circled above the nets and the market slowly came to life with traders "
        "setting up stalls of bread, cheese, fruit and freshly caught fish for the first customers of the day."
    ),
    (
        "Distributed systems must tolerate partial failure: a node may crash, a network link may drop packets, "
        "and clocks may drift. Consensus protocols such as Raft elect a leader, replicate a log and commit "
        "entries once a majority acknowledges them, which keeps replicas consistent despite failures."
    ),
)
